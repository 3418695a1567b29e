"""Accounts: email normalisation, password hashing and policy, sign-up and sign-in."""
