"""Running a job: the catalog of jobs, the one run lifecycle, the job process, progress and recovery."""
