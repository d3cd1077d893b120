"""``python -m stepwell_metadata`` runs the service like ``stepwell-metadata``."""

from stepwell_metadata.main import main

main()
