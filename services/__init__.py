"""The three touchbase services: contacts, reminders and notifier."""
