"""Integration-test harness for mailout: real SMTP servers on 127.0.0.1, read back by Python.

What it is: helpers the pytest fixtures in ../conftest.py are built from.
  netutil   free ports, waiting for a port to listen
  certs     a per-run test CA, a server certificate for localhost, and an unrelated CA
  procs     child processes that are stopped however the run ends, stale-run reaper
  stores    reading messages back (aiosmtpd / smtp-server spool dirs, Postfix Maildir)
  servers   Postfix + Dovecot SASL, aiosmtpd, smtp-server: configure, start, stop
  smtpauth  SASL for the self-tests (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, UTF-8 safe)
  mailout   running the mailout binary and checking that no secret leaks from it

What it leaves out: IPv6 listeners, DNS (everything is 127.0.0.1), real relaying.
"""
