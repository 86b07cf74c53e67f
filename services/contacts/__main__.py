"""Entry point: ``python -m services.contacts``."""

from services.contacts.main import create_app
from services.contacts.settings import ContactsSettings
from shared.app import run_service


def main() -> None:
    """Run the contacts service with settings from the environment."""
    run_service(ContactsSettings, create_app)


if __name__ == "__main__":
    main()
