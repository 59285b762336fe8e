"""Daily digest: one graph started by hand or by the host's scheduler.

A manual trigger and a cron trigger share the payload contract, whose defaults are complete
because a cron run gets no caller input. A duplicate delivery of the same scheduled
activation returns the run the first one started.

Run it: ``python examples/daily_digest.py`` prints the workflow's shape.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from squidmesh_es.workflow import (
    COMPLETE,
    Backoff,
    CronIdempotency,
    JSONObject,
    Ok,
    RetryPolicy,
    Step,
    StepContext,
    Workflow,
    cron,
    manual,
    step,
    today_iso8601,
    transition,
    validate_spec,
)


class DigestRequest(BaseModel):
    """Where to read the feed and where to post the digest."""

    feed_url: str = "https://example.com/feed.xml"
    channel: str = "#daily-digest"
    posted_on: str = Field(default_factory=today_iso8601)


class FetchFeed(Step):
    """Read the feed (fixed items here) and note the scheduled window, if any."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        items: list[str] = ["Release 0.1 is out", "Retries now back off exponentially"]
        window = ctx.schedule.get("intended_window") if ctx.schedule else None
        return Ok({"feed": {"url": input["feed_url"], "items": list(items), "window": window}})


class BuildDigest(Step):
    """Turn the items into one message, one line per item (real newlines)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        feed = input["feed"]
        items = feed.get("items") if isinstance(feed, dict) else None
        lines = [f"Digest for {input['posted_on']}"]
        lines += [f"- {item}" for item in items] if isinstance(items, list) else []
        return Ok({"title": lines[0], "content": "\n".join(lines)})


class PostDigest(Step):
    """Post the digest to the channel (recorded here, where a host would call its chat API)."""

    def run(self, input: JSONObject, ctx: StepContext) -> Ok:
        digest = input["digest"]
        content = digest.get("content", "") if isinstance(digest, dict) else ""
        delivery = {
            "channel": input["channel"],
            "lines": len(str(content).splitlines()),
            "idempotency_key": ctx.idempotency_key,
        }
        return Ok({"delivery": delivery})


class DailyDigest(Workflow):
    """Fetch a feed, build a digest, post it."""

    payload = DigestRequest
    triggers = [
        manual("manual_digest"),
        cron(
            "daily_digest",
            "@reboot",
            timezone="Etc/UTC",
            idempotency=CronIdempotency.RETURN_EXISTING_RUN,
        ),
    ]

    fetch_feed = step(FetchFeed, input=["feed_url"])
    build_digest = step(BuildDigest, input=["feed", "posted_on"], output="digest")
    post_digest = step(
        PostDigest,
        input=["channel", "digest"],
        retry=RetryPolicy(
            max_attempts=5,
            backoff=Backoff.exponential(min=timedelta(seconds=1), max=timedelta(seconds=30)),
        ),
    )

    transitions = [
        transition(fetch_feed, to=build_digest),
        transition(build_digest, to=post_digest),
        transition(post_digest, to=COMPLETE),
    ]


if __name__ == "__main__":
    spec = DailyDigest.to_spec()
    validate_spec(spec)
    print(spec.describe())
