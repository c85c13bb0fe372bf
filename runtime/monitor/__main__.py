"""`python -m runtime.monitor`: the monitoring job, as the generated CronWorkflow runs it."""

from runtime.monitor.job import main

raise SystemExit(main())
