"""A job's secrets: resolved from the environment by name, handed to the kernel only, and redacted.

A secret is an environment variable *name* in a job's definition; :func:`resolve_secrets` reads the
values where the job runs. The runner puts them in the kernel's environment only (never argv,
parameters or the manifest), and a :class:`Redactor` replaces each value with :data:`MASK` in
everything written under the run's folder: every string of the executed notebook (cell sources, stream
text, ``text/plain``, ``text/html`` and other text outputs, errors' ``evalue`` and traceback, metadata),
hence its HTML, and the step's log as it is written (:class:`RedactingWriter`). The files are redacted
as they are written, so the hashes the archive records are of the redacted bytes.

Out of scope: a value that reaches an output transformed (base64, URL- or JSON-escaped, split by the
notebook itself, inside an image), and values shorter than :data:`MIN_LENGTH` characters, which are
not redacted: masking every occurrence of a two- or three-character string would mangle ordinary
output (numbers, words) and, by where the masks fall, say more about the value than it hides. Such a
value is named (by variable) in a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from shiol_lib.errors import SecretMissingError

if TYPE_CHECKING:
    import nbformat

log = logging.getLogger(__name__)

MASK = "***"
MIN_LENGTH = 4  # shorter values are not redacted (see the module's docstring)


def resolve_secrets(names: Iterable[str], environ: Mapping[str, str], *, job: str | None = None) -> dict[str, str]:
    """Name -> value of each secret ``names`` lists, read from ``environ``.

    Raises:
        SecretMissingError: a variable is not set or empty (named, with the job and what to do).
    """
    values: dict[str, str] = {}
    for name in names:
        value = environ.get(name)
        if not value:
            state = "empty" if name in environ else "not set"
            where = f"job {job!r}: " if job else ""
            raise SecretMissingError(
                f"{where}secret variable {name!r} is {state} in the environment the job runs in; set it there "
                "(the scheduler's service environment file, or the shell that runs `shiol run`) or remove it "
                "from the job's secrets",
                variable=name,
                job=job,
            )
        values[name] = value
    return values


class Redactor:
    """Replaces each secret value (of at least :data:`MIN_LENGTH` characters) with :data:`MASK`."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        short = sorted(name for name, value in secrets.items() if len(value) < MIN_LENGTH)
        if short:
            log.warning(
                "secret variable(s) %s hold fewer than %d characters: handed to the kernel but not redacted "
                "from its output",
                ", ".join(short),
                MIN_LENGTH,
            )
        kept = {value for value in secrets.values() if len(value) >= MIN_LENGTH}
        self.values = tuple(sorted(kept, key=len, reverse=True))  # a longer value first: it may contain another

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def longest(self) -> int:
        """The length of the longest value redacted (0: none)."""
        return len(self.values[0]) if self.values else 0

    def text(self, text: str) -> str:
        """``text`` with every secret value masked."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def notebook(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """A redacted copy of ``nb`` (``nb`` itself is left as it is).

        Consecutive stream outputs of one cell are joined first (a value printed across two messages).
        """
        import nbformat  # loaded by then: the notebook came from papermill

        return nbformat.from_dict(self._walk(nb, None))

    def _walk(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            return value if key is not None and _is_binary(key) else self.text(value)
        if isinstance(value, dict):
            walked = {k: self._walk(v, k) for k, v in value.items()}
            if isinstance(walked.get("outputs"), list):
                walked["outputs"] = _joined_streams(walked["outputs"], self)
            return walked
        if isinstance(value, list):
            return [self._walk(item, key) for item in value]
        return value


def _is_binary(mimetype: str) -> bool:
    """Whether an output's mimetype holds base64 (an image other than SVG): left as it is."""
    return mimetype.startswith("image/") and mimetype != "image/svg+xml"


def _joined_streams(outputs: list[Any], redactor: Redactor) -> list[Any]:
    joined: list[Any] = []
    for output in outputs:
        last = joined[-1] if joined else None
        if (
            isinstance(output, dict)
            and output.get("output_type") == "stream"
            and isinstance(last, dict)
            and last.get("output_type") == "stream"
            and last.get("name") == output.get("name")
        ):
            last["text"] = redactor.text(str(last.get("text", "")) + str(output.get("text", "")))
        else:
            joined.append(output)
    return joined


class RedactingWriter:
    """A text file that masks secret values before they reach it, even split across two writes.

    It holds back the last ``longest - 1`` characters until more arrive (or :meth:`close`), so a value
    is whole in what it holds when its last character comes. :meth:`flush` flushes the file only.
    """

    def __init__(self, file: TextIO, redactor: Redactor) -> None:
        self.file, self.redactor = file, redactor
        self._held = ""
        self._keep = max(0, redactor.longest - 1)

    def write(self, text: str) -> int:
        """Mask and write ``text`` (all but the tail that may begin a value)."""
        if not self.redactor:
            return self.file.write(text)
        masked = self.redactor.text(self._held + text)
        cut = max(0, len(masked) - self._keep)
        self._held = masked[cut:]
        self.file.write(masked[:cut])
        return len(text)

    def flush(self) -> None:
        """Flush the file (the held tail stays held)."""
        self.file.flush()

    def close(self) -> None:
        """Write the held tail and flush; the file itself stays open (its owner closes it)."""
        if self._held:
            self.file.write(self._held)
            self._held = ""
        self.file.flush()


@contextlib.contextmanager
def redacting(file: TextIO, redactor: Redactor) -> Iterator[RedactingWriter]:
    """A :class:`RedactingWriter` on ``file`` for the block; its held tail is written when the block ends."""
    writer = RedactingWriter(file, redactor)
    try:
        yield writer
    finally:
        writer.close()
