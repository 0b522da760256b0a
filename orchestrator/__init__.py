"""The outreach orchestrator: contacts, policy, campaigns, dispatch and the API."""
