"""Contacts service: owns users, contacts, interactions and referrals."""
