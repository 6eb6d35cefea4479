"""The ``shiol`` command: gathers options and calls the library. Nothing else imports it."""
