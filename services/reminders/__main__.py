"""Entry point: ``python -m services.reminders``."""

from services.reminders.main import create_app
from services.reminders.settings import RemindersSettings
from shared.app import run_service


def main() -> None:
    """Run the reminders service with settings from the environment."""
    run_service(RemindersSettings, create_app)


if __name__ == "__main__":
    main()
