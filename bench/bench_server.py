"""Benchmark the backend service on loopback.

1. generate_motion round trip vs the model's own time (measured inside the server around the
   generator call): the difference is the service's overhead (target <= 100 ms).
2. requests per second with 8 concurrent clients (generate_motion, and hello for the bare transport).

Uses the real text-to-motion model (`vmclip.t2m`). Where that stage is not available, pass
`--motion FILE.npz` to time the service around a stand-in that cuts windows out of that motion
(the overhead does not depend on what the stage computes). Prints medians.

    .venv/bin/python bench/bench_server.py [--rounds 20] [--clients 8] [--motion walk.npz]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import vmclip_protocol as vp
from vmclip.server import Pipeline, Server, ServerConfig

PROMPTS = [
    "a person walks forward",
    "a man waves with his right hand",
    "someone jumps twice",
    "a woman sits down slowly",
    "a person turns around and runs",
]


class TimedPipeline(Pipeline):
    """The real pipeline (or a replay of a motion file), timing the stage call itself."""

    def __init__(self, motion_file: Path | None) -> None:
        super().__init__()
        self.motion_file = motion_file
        self.model_s: list[float] = []
        self._lock_t = threading.Lock()
        if motion_file is not None:
            from vmclip.motion import load_npz

            self.source = load_npz(motion_file)

    def capabilities(self):
        caps = super().capabilities()
        if self.motion_file is not None:
            caps["generate_motion"] = {"available": True, "reason": "replay of " + self.motion_file.name}
        return caps

    def generate_motion(self, prompt, seconds, seed, fps, *, progress, cancel):
        t0 = time.perf_counter()
        if self.motion_file is None:
            out = super().generate_motion(prompt, seconds, seed, fps, progress=progress, cancel=cancel)
        else:
            src = self.source
            n = min(src.num_frames, int(round(seconds * src.fps)) + 1)
            start = int(np.random.default_rng(seed).integers(0, src.num_frames - n + 1))
            m = src.slice(start, start + n).resample(fps)
            out = vp.MotionPayload(m.axis_angle().astype(np.float32), m.trans, m.fps, text=prompt)
        with self._lock_t:
            self.model_s.append(time.perf_counter() - t0)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30, help="sequential round trips (default 30)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=5, help="generate_motion calls per client")
    parser.add_argument("--seconds", type=float, default=4.0, help="motion length asked for")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--motion", type=Path, default=None, help="replay this .npz instead of the model")
    args = parser.parse_args()

    pipeline = TimedPipeline(args.motion)
    if args.motion is None:
        pipeline.preload()
    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", workers=args.workers), pipeline).start()
    try:
        with vp.Client(server.address, timeout_s=120) as client:
            info = client.hello()
            cap = info["capabilities"]["generate_motion"]
            if not cap["available"]:
                raise SystemExit(f"generate_motion unavailable: {cap.get('reason')} (use --motion FILE.npz)")
            print(
                f"server {info['server']} on {info['device']}, stage: "
                f"{'replay of ' + args.motion.name if args.motion else 'vmclip.t2m model'}"
            )
            client.generate_motion(PROMPTS[0], args.seconds, 0)  # warm-up (lazy loads, caches)
            pipeline.model_s.clear()
            rtt = []
            for i in range(args.rounds):
                t0 = time.perf_counter()
                client.generate_motion(PROMPTS[i % len(PROMPTS)], args.seconds, seed=i)
                rtt.append(time.perf_counter() - t0)
            model = list(pipeline.model_s)
            overhead = [r - m for r, m in zip(rtt, model, strict=True)]
            hello = []
            for _ in range(200):
                t0 = time.perf_counter()
                client.hello()
                hello.append(time.perf_counter() - t0)
        med = statistics.median
        print(f"generate_motion ({args.seconds:g} s motion), {args.rounds} sequential calls:")
        print(
            f"  round trip median {med(rtt) * 1e3:.1f} ms, model's own time median {med(model) * 1e3:.1f} ms"
        )
        p90 = float(np.percentile(overhead, 90))
        print(
            f"  service overhead median {med(overhead) * 1e3:.2f} ms, 90th percentile {p90 * 1e3:.2f} ms, "
            f"max {max(overhead) * 1e3:.2f} ms (target <= 100 ms): {'OK' if p90 <= 0.1 else 'OVER'}"
        )
        print(f"hello round trip median {med(hello) * 1e3:.2f} ms")

        for kind in ("generate_motion", "hello"):
            count = args.per_client if kind == "generate_motion" else 200
            errors: list[BaseException] = []

            def run(i: int, kind: str = kind, count: int = count, errors: list = errors) -> None:
                try:
                    with vp.Client(server.address, timeout_s=300) as c:
                        for k in range(count):
                            if kind == "hello":
                                c.hello()
                            else:
                                c.generate_motion(
                                    PROMPTS[(i + k) % len(PROMPTS)], args.seconds, seed=i * 100 + k
                                )
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            if errors:
                raise SystemExit(f"{kind}: {len(errors)} client(s) failed: {errors[0]!r}")
            total = args.clients * count
            print(
                f"{args.clients} clients x {count} {kind}: {total / wall:.1f} requests/s "
                f"({wall:.2f} s, {args.workers} workers)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
