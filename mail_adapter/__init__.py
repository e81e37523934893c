"""The mailbox side: IMAP, MIME, iCalendar and authentication headers, to domain drafts.

Parsers here are pure (bytes in, frozen dataclass out); only mailbox.py talks to a server.
"""
