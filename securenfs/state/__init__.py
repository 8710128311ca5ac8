"""NFSv4.1 protocol state: clients, sessions and slots (leases, opens and locks come later).

All of it lives on the event-loop thread: no locks, and no awaits inside a state change
unless a comment says why that is safe.
"""
