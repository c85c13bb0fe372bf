"""Audit the packages installed in Kiln's environment for known vulnerabilities with
pip-audit, where its advisory data can be reached.

    python .ci/audit_dependencies.py --pip-audit PATH --site-packages DIR

pip-audit asks an advisory service about each installed version: PyPI's JSON API by
default (`https://pypi.org/pypi/<name>/<version>/json`, its `vulnerabilities`). A
machine that reaches only the package index (pip's "simple" pages) gets no answer
for any package; then the audit is skipped, and says so, rather than passing as if
it had looked. Any vulnerability found fails it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", required=True, help="the pip-audit program")
    parser.add_argument("--site-packages", required=True, help="the environment to audit")
    args = parser.parse_args(argv)
    command = [args.pip_audit, "--path", args.site_packages, "--format", "json"]
    command += ["--progress-spinner", "off", "--skip-editable"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(f"pip-audit failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return 1
    packages = report.get("dependencies", [])
    audited = [p for p in packages if "skip_reason" not in p]
    if packages and not audited:
        print(
            f"dependency audit skipped: none of {len(packages)} packages could be looked up; "
            "pip-audit needs PyPI's JSON API (pypi.org/pypi/NAME/VERSION/json), which this "
            "machine does not reach (see README, Security scans)"
        )
        return 0
    vulnerable = [(p, v) for p in audited for v in p.get("vulns", [])]
    for package, vuln in vulnerable:
        fixed = ", ".join(vuln.get("fix_versions", [])) or "none yet"
        print(f"{package['name']} {package['version']}: {vuln['id']} (fixed in {fixed})")
    print(f"dependency audit: {len(audited)} packages, {len(vulnerable)} known vulnerabilities")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
