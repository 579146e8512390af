"""Plot capacity against the number of listeners: delivery latency and deliveries per second.

    python scripts/bench_plot.py --out docs/capacity.png
    python scripts/bench_plot.py --modes memory --listeners 1000,5000 --duration 3
    python scripts/bench_plot.py --from docs/capacity.json --out docs/capacity.png

For each mode and number of listeners it runs `scripts/bench.py` twice, each run with a
server of its own: at `--rate` messages per second for the latency percentiles (post to
event received), and flat out for deliveries per second. It prints each run's figures as
it goes, writes them all as JSON beside the picture, and draws the picture (PNG, with
matplotlib: `python -m pip install matplotlib`). `--from` draws it again from such a JSON
file, without running anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"memory": "#1f77b4", "redis": "#d62728"}
LABELS = {"memory": "in-process", "redis": "Redis"}


def measure(mode: str, listeners: int, load: list[str], duration: float) -> dict:
    """Run the benchmark once; return the figures it printed last (its JSON line)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--mode", mode,
         "--listeners", str(listeners), "--duration", str(duration), *load],
        capture_output=True, text=True, timeout=600,
    )
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise SystemExit(f"the benchmark failed ({mode}, {listeners} listeners):\n"
                         + done.stdout[-2000:] + done.stderr[-2000:])
    return json.loads(lines[-1])


def draw(results: dict[str, list[dict]], rate: float, out: Path) -> None:
    """Draw latency percentiles and deliveries per second against listeners, per mode."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot, ticker

    figure, (latency, throughput) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for mode, points in results.items():
        xs = [p["listeners"] for p in points]
        for key, style in (("p50", "-"), ("p90", "--"), ("p99", ":")):
            latency.plot(xs, [p["paced"]["latency_ms"][key] for p in points], style,
                         marker="o", color=COLOURS[mode], label=f"{LABELS[mode]} {key}")
        throughput.plot(xs, [p["flat_out"]["deliveries_per_s"] for p in points], "-",
                        marker="o", color=COLOURS[mode], label=LABELS[mode])
    latency.set(title=f"Delivery latency at {rate:g} messages/s", xlabel="listeners",
                ylabel="ms, post to event received")
    throughput.set(title="Deliveries per second, posters flat out", xlabel="listeners",
                   ylabel="events written to listeners per second")
    throughput.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    for axes in (latency, throughput):
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="memory,redis", help="default memory,redis")
    parser.add_argument("--listeners", default="1000,2500,5000,7500,10000",
                        help="numbers of listeners, comma-separated (default 1k to 10k)")
    parser.add_argument("--rate", type=float, default=20,
                        help="messages per second for the latency (default 20)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per run (default 5)")
    parser.add_argument("--out", type=Path, default=Path("capacity.png"))
    parser.add_argument("--from", dest="source", type=Path,
                        help="draw from the JSON of an earlier run instead of measuring")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401  (fail now, not after minutes of runs)
    except ImportError:
        print("the plot needs matplotlib: python -m pip install matplotlib", file=sys.stderr)
        return 2
    if args.source:
        draw(json.loads(args.source.read_text()), args.rate, args.out)
        print(f"wrote {args.out}")
        return 0
    modes = args.modes.split(",")
    counts = [int(n) for n in args.listeners.split(",")]
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    runs, began = 2 * len(modes) * len(counts), time.monotonic()
    for mode in modes:
        for listeners in counts:
            paced = measure(mode, listeners, ["--rate", str(args.rate)], args.duration)
            flat_out = measure(mode, listeners, ["--saturate"], args.duration)
            results[mode].append({"listeners": listeners, "paced": paced, "flat_out": flat_out})
            done = sum(len(points) for points in results.values()) * 2
            lat = paced["latency_ms"]
            print(f"[{done}/{runs}, {time.monotonic() - began:.0f} s] {LABELS[mode]}, "
                  f"{listeners} listeners: latency p50 {lat['p50']} p90 {lat['p90']} "
                  f"p99 {lat['p99']} ms at {args.rate:g} msg/s; flat out "
                  f"{flat_out['deliveries_per_s']} deliveries/s", flush=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    draw(results, args.rate, args.out)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
