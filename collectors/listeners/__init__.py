"""Network listeners of the intake: syslog over UDP, TCP and TLS, RELP, and HTTP, on one asyncio loop.

Listeners never parse content: they frame, hand records to `collectors.intake.Intake` (attribution and
the durable spool) and answer the sender. `IntakeService` (`service.py`) runs them; `soc collect` is its
command. The protocols as implemented are described in `collectors/INTAKE.md`.
"""
