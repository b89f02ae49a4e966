#!/usr/bin/env python3
"""spatule_synth's command line. Run ``python generate.py --flagfile=configs/<preset>.flags``.

``python generate.py --help`` lists spatule_synth's flags; README.md documents modes and presets.
"""

from spatule_synth import cli

if __name__ == "__main__":
    cli.run()
