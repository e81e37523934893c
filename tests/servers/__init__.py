"""Real servers for the tests (Dovecot, PostgreSQL, a fault-injecting TCP proxy), each
started from a throwaway configuration on a free loopback port and always stopped."""
