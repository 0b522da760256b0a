"""Campaigns (DESIGN section 7): the request shape, its checks, and pure step timing.

- `spec`: the `POST /v1/campaigns` body (`CampaignSpec`) and `validate_campaign`, which returns
  every problem at once as one `ValidationFailed` with field paths (`steps[1].delay.after`).
- `durations`: `parse_duration("90m")`.
- `cron`: a five-field cron parser used to check `schedule.cron`.
- `planning`: when a step is due for one contact, and how a send window moves it.
"""
