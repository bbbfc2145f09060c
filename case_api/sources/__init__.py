"""Log sources a tenant has onboarded (syslog, aws.cloudtrail, ...): which rules can fire for it."""
