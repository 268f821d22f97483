"""Local stand-ins for the services driftwatch notifies, speaking their real protocols on
loopback (aiohttp servers): Slack's Web API, PagerDuty's Events API v2, Alertmanager's v2
API and a Standard Webhooks receiver."""
