"""Entry point: ``python -m services.notifier``."""

from services.notifier.main import create_app
from services.notifier.settings import NotifierSettings
from shared.app import run_service


def main() -> None:
    """Run the notifier service with settings from the environment."""
    run_service(NotifierSettings, create_app)


if __name__ == "__main__":
    main()
