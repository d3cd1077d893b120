"""``python -m stepwell_scheduler`` runs the service like ``stepwell-scheduler``."""

from stepwell_scheduler.main import main

main()
