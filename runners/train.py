"""Train one trial without Ray.

    python runners/train.py                                  # mfeat, mlp, goal
    python runners/train.py --config my.yaml --set strategy=ogm --set alpha=0.8
    python runners/train.py --set dataset_options.views=[pix,fou,kar] --output runs/a
    python runners/train.py --resume runs/a                  # continue after a crash

Config keys: see goal_plugin/engine/config.py (printed by --list-keys).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from goal_plugin.engine import DEFAULTS, CheckpointError, ConfigError, fit, resolve_config
from goal_plugin.engine.cli import apply_overrides, format_summary, load_config_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of trial-config keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (repeatable)")
    parser.add_argument("--output", help="folder for config.json, metrics.json and checkpoints")
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR (its own config)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    parser.add_argument("--list-keys", action="store_true", help="print the config keys and defaults")
    args = parser.parse_args(argv)
    if args.list_keys:
        print(json.dumps(DEFAULTS, indent=1))
        return 0
    try:
        if args.resume:
            if args.config or args.set:
                raise ConfigError("--resume uses the run's saved config; do not pass --config or --set")
            output = Path(args.resume)
            config_file = output / "config.json"
            if not config_file.is_file():
                raise ConfigError(f"{str(output)!r} holds no config.json: not a run folder")
            raw = json.loads(config_file.read_text())
        else:
            output = Path(args.output) if args.output else None
            raw = apply_overrides(load_config_file(args.config) if args.config else {}, args.set)
        config = resolve_config(raw)
        log = None if args.quiet else lambda line: print(line, flush=True)
        results = fit(
            config,
            output_dir=output,
            resume_from=output if args.resume else None,
            progress=not args.quiet,
            log=log,
        )
    except (ConfigError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(results))
    if output is not None:
        print(f"metrics and checkpoints in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
