"""Checks that read and report, never change: status, doctor, their findings."""
