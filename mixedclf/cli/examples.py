"""Two or three examples per command, printed at the end of its `--help` (HelpGroup sets them as the epilog, so
the commands' own modules stay as they are). Each is a command line that runs as written from a checkout (the
deploy ones once `deploy init` has written the spec, apply / verify / destroy with RUNPOD_API_KEY set).

Keyed by the command's path below `mixedclf` ("deploy plan"), so a command never shows the examples of another
command of the same name in another group (`plan` and `deploy plan` take different options)."""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "classify": [
        ("Label the sample reviews and see what each stage cost",
         "mixedclf classify sample_data/reviews.jsonl -o labeled.parquet"),
        ("Nightly from cron: nothing printed on success, the report kept, a budget",
         "mixedclf classify in.jsonl.gz -o out.parquet --quiet --report report.json --max-cost 2"),
        ("In a pipe: rows on stdout, the id and label of each with jq",
         "cat in.jsonl | mixedclf classify - -o - | jq -c '{id: .id, label: .label}'"),
    ],
    "models": [
        ("The models mixedclf can use", "mixedclf models"),
        ("Also the model folders under ./heads, as JSON", "mixedclf models --search heads --format json"),
    ],
    "estimate": [
        ("Mixed vs GPU-only per day and month at 10,000 requests a day", "mixedclf estimate -n 10000"),
        ("From the stage seconds a run measured, as Runpod bills it",
         "mixedclf estimate --from-report report.json --billing runpod"),
        ("The cost over a range of request rates", "mixedclf estimate --sweep 1000:1000000"),
    ],
    "check": [
        ("Fail a CI job when cost per 1,000 rows rose more than 10%",
         "mixedclf check report.json --baseline main-report.json"),
        ("Three runs a side, a markdown comment for the pull request",
         "mixedclf check a.json b.json c.json --baseline x.json y.json z.json --format markdown -o comment.md"),
    ],
    "check compare": [
        ("Fail a CI job when cost per 1,000 rows rose more than 10% (`check` alone means `check compare`)",
         "mixedclf check compare report.json --baseline main-report.json"),
        ("Three runs a side, the CPU-time gate at 15%, as JSON",
         "mixedclf check compare a.json b.json c.json --baseline x.json y.json z.json --max-stage-increase-pct 15 "
         "--format json"),
    ],
    "check run": [
        ("CI: the base branch's install and this one classify the sample, interleaved, six rounds",
         "mixedclf check run sample_data/reviews.jsonl --baseline-python /tmp/base-venv/bin/python"),
        ("Three rounds, a markdown comment for the pull request",
         "mixedclf check run sample_data/reviews.jsonl --baseline-python /tmp/base-venv/bin/python --rounds 3 "
         "--format markdown -o comment.md"),
    ],
    "plan": [
        ("The cheapest hardware for a million rows by tomorrow",
         "mixedclf plan --rows 1000000 --deadline 24h --from-report reference=report.json"),
        ("A day's requests, due within 2 hours, as JSON",
         "mixedclf plan --requests-per-day 50000 --deadline 2h --from-report reference=report.json --format json"),
    ],
    "train": [
        ("A head for your labels on the packaged encoder",
         "mixedclf train labeled.jsonl -o my-head"),
        ("Also fine-tune the top two encoder layers, holding out by author",
         "mixedclf train labeled.jsonl -o my-head --train-top-layers 2 --group-field author"),
    ],
    "serve": [
        ("Serve the default model on 127.0.0.1:8888", "mixedclf serve"),
        ("Your model on every interface, behind an API key",
         "MIXEDCLF_API_KEY=secret mixedclf serve --model my-head --host 0.0.0.0"),
    ],
    "deploy init": [
        ("Write mixedclf-deploy.toml: the original design, commented", "mixedclf deploy init"),
        ("A second spec for a staging deployment", "mixedclf deploy init staging.toml"),
    ],
    "deploy plan": [
        ("The requests apply would send to an empty account (no key needed, nothing sent)", "mixedclf deploy plan"),
        ("The same for another spec, as JSON", "mixedclf deploy plan staging.toml --format json"),
    ],
    "deploy apply": [
        ("Create or update the spec's endpoints", "RUNPOD_API_KEY=... mixedclf deploy apply"),
        ("Another spec's endpoints, then read them back", "mixedclf deploy apply staging.toml && "
         "mixedclf deploy verify staging.toml"),
    ],
    "deploy verify": [
        ("Exit 1 naming every setting that differs from the spec", "mixedclf deploy verify"),
        ("Another spec's endpoints", "mixedclf deploy verify staging.toml"),
    ],
    "deploy destroy": [
        ("Delete the endpoints apply made, then the state file", "mixedclf deploy destroy"),
        ("Another spec's endpoints", "mixedclf deploy destroy staging.toml"),
    ],
    "deploy render": [
        ("A Dockerfile per endpoint kind in docker/", "mixedclf deploy render --out docker"),
        ("Another spec's images", "mixedclf deploy render staging.toml --out docker-staging"),
    ],
    "deploy local": [
        ("The whole topology on this machine, the orchestrator on 127.0.0.1:8888", "mixedclf deploy local"),
        ("On another port, open to the network", "mixedclf deploy local --port 9000 --host 0.0.0.0"),
    ],
    "worker": [
        ("An inference worker as an endpoint starts it (the stage from its environment)",
         "MIXEDCLF_STAGE=infer mixedclf worker"),
        ("A preprocessing worker for your model, two jobs at once",
         "mixedclf worker --stage pre --model my-head --jobs-per-worker 2"),
    ],
    "report show": [
        ("A saved report as the table classify printed", "mixedclf report show report.json"),
        ("As markdown, without the advice", "mixedclf report show report.json --format markdown --no-advice"),
    ],
    "report advice": [
        ("Where a run's cost could be cut", "mixedclf report advice report.json"),
        ("The two largest savings as JSON", "mixedclf report advice report.json --limit 2 --format json"),
    ],
}


def epilog(path: str) -> str | None:
    """The examples of the command at `path` ("classify", "deploy plan") as help text (rich markup escaped by the
    caller), or None."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    lines = [f"{what}:\n  $ {command}" for what, command in examples]
    return "Examples\n\n" + "\n\n".join(lines)
