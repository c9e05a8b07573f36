"""Profile loading speed: ``load_profile`` over N generated profiles, per-profile milliseconds.

    python benchmarks/bench_config.py [--profiles 1000] [--rounds 5]

Writes N distinct profiles (one per vserver, the sandbox's shape: HA pair URL, SANs, subject,
sectigo block) into a temporary directory, then loads every one of them ``--rounds`` times and
prints the median and the fastest round as milliseconds per profile. Run it against another
checkout with ``PYTHONPATH=/path/to/checkout`` to compare versions. In-process, no network.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from citrix_connector.config import load_profile

PROFILE = """\
name: {name}
appliance:
  url: [https://adc1.example.com, https://adc2.example.com]
  username: certbot
  password: ${{ADC_PASSWORD}}
  verify_tls: true
  timeout: 30
vservers:
  - vs_{i}_https
  - {{name: cs_{i}_https, type: cs, sni: true}}
certificate:
  common_name: host{i}.example.com
  subject_alt_names: [host{i}.example.com, www.host{i}.example.com, 192.0.2.{octet}]
  key_type: RSA
  key_size: 2048
  subject: {{organization: Example, country: DE, state: Bavaria, locality: Munich}}
sectigo:
  org_id: 1234
  cert_type: 567
  term: 365
  comments: "profile {i}"
  custom_fields: {{cost_center: "4711"}}
renewal:
  days_before_expiry: 30
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {"ADC_PASSWORD": "bench-password"}
    with tempfile.TemporaryDirectory(prefix="bench-config-") as tmp:
        paths = []
        for i in range(args.profiles):
            path = Path(tmp) / f"p{i:05d}.yaml"
            path.write_text(PROFILE.format(name=f"p{i:05d}", i=i, octet=i % 250 + 1), encoding="utf-8")
            paths.append(path)
        for path in paths[:50]:  # warm-up (imports, caches)
            load_profile(path, env=env)
        per_profile = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for path in paths:
                load_profile(path, env=env)
            per_profile.append((time.perf_counter() - start) / len(paths) * 1000)
    try:
        from citrix_connector.config.source import HAVE_LIBYAML
    except ImportError:  # before the config/ package
        HAVE_LIBYAML = False  # noqa: N806
    median, fastest = statistics.median(per_profile), min(per_profile)
    print(
        f"{args.profiles} profiles x {args.rounds} rounds: median {median:.3f} ms/profile, "
        f"fastest round {fastest:.3f} ms/profile "
        f"(libyaml events: {HAVE_LIBYAML}; Python {sys.version.split()[0]})"
    )


if __name__ == "__main__":
    main()
