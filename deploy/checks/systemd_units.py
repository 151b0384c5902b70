#!/usr/bin/env python3
"""A parser check of systemd service units, for machines where `systemd-analyze verify` is not available.

It reads units as systemd does (sections, `Key=value`, comments, backslash continuations) and reports what
`systemd-analyze verify` would: unknown sections or keys, commands that are not absolute paths, values that
do not parse (booleans, enumerations, time spans), plus the portal's own rules (never run as root, template
units name their instance). Drop-ins (`NAME.service.d/*.conf`) are read the same way, without the sections
a whole unit needs; the audit worker's drop-in must give it its own environment file (the sealer's database
URL, deploy/postgres/README.md). Exits non-zero listing every problem.

    python3 deploy/checks/systemd_units.py deploy/systemd/*.service deploy/systemd/*.service.d/*.conf
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNIT_KEYS = {
    "Description", "Documentation", "Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds",
    "Conflicts", "Before", "After", "OnFailure", "OnSuccess", "PropagatesReloadTo", "ReloadPropagatedFrom",
    "JoinsNamespaceOf", "RequiresMountsFor", "OnFailureJobMode", "IgnoreOnIsolate", "StopWhenUnneeded",
    "RefuseManualStart", "RefuseManualStop", "AllowIsolate", "DefaultDependencies", "CollectMode",
    "FailureAction", "SuccessAction", "StartLimitIntervalSec", "StartLimitBurst", "StartLimitAction",
    "RebootArgument", "SourcePath", "ConditionPathExists", "ConditionPathIsDirectory", "ConditionHost",
    "ConditionVirtualization", "AssertPathExists", "AssertPathIsDirectory", "JobTimeoutSec",
}  # fmt: skip
INSTALL_KEYS = {"Alias", "WantedBy", "RequiredBy", "UpheldBy", "Also", "DefaultInstance"}
SERVICE_KEYS = {
    # [Service]
    "Type", "ExitType", "RemainAfterExit", "GuessMainPID", "PIDFile", "BusName", "ExecStart",
    "ExecStartPre", "ExecStartPost", "ExecCondition", "ExecReload", "ExecStop", "ExecStopPost", "RestartSec",
    "TimeoutStartSec",
    "TimeoutStopSec", "TimeoutAbortSec", "TimeoutSec", "RuntimeMaxSec", "WatchdogSec", "Restart",
    "SuccessExitStatus", "RestartPreventExitStatus", "RestartForceExitStatus", "RootDirectoryStartOnly",
    "NonBlocking", "NotifyAccess", "Sockets", "FileDescriptorStoreMax", "USBFunctionDescriptors",
    "OOMPolicy", "RestartMode", "Slice",
    # exec context
    "WorkingDirectory", "RootDirectory", "User", "Group", "DynamicUser", "SupplementaryGroups", "PAMName",
    "UMask", "Environment", "EnvironmentFile", "PassEnvironment", "UnsetEnvironment", "StandardInput",
    "StandardOutput", "StandardError", "SyslogIdentifier", "SyslogFacility", "SyslogLevel", "LogLevelMax",
    "LimitNOFILE", "LimitNPROC", "LimitCORE", "LimitMEMLOCK", "Nice", "CPUSchedulingPolicy", "CPUAffinity",
    "IOSchedulingClass", "IOSchedulingPriority", "OOMScoreAdjust", "CapabilityBoundingSet",
    "AmbientCapabilities", "NoNewPrivileges", "SecureBits", "ProtectSystem", "ProtectHome", "PrivateTmp",
    "PrivateDevices", "PrivateNetwork", "PrivateUsers", "PrivateIPC", "ProtectHostname", "ProtectClock",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectProc", "ProcSubset", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "SystemCallFilter",
    "SystemCallArchitectures", "SystemCallErrorNumber", "ReadWritePaths", "ReadOnlyPaths",
    "InaccessiblePaths", "ExecPaths", "NoExecPaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths",
    "RuntimeDirectory", "StateDirectory", "CacheDirectory", "LogsDirectory", "ConfigurationDirectory",
    "RuntimeDirectoryMode", "StateDirectoryMode", "CacheDirectoryMode", "LogsDirectoryMode",
    "ConfigurationDirectoryMode", "RuntimeDirectoryPreserve", "KeyringMode", "LoadCredential",
    "SetCredential", "RemoveIPC", "UtmpIdentifier", "TTYPath", "KillMode", "KillSignal", "RestartKillSignal",
    "SendSIGHUP", "SendSIGKILL", "FinalKillSignal", "WatchdogSignal",
    # resource control
    "CPUAccounting", "CPUWeight", "CPUQuota", "MemoryAccounting", "MemoryMin", "MemoryLow", "MemoryHigh",
    "MemoryMax", "MemorySwapMax", "TasksAccounting", "TasksMax", "IOAccounting", "IOWeight",
    "IPAccounting", "IPAddressAllow", "IPAddressDeny", "Delegate",
}  # fmt: skip
SECTIONS = {"Unit": UNIT_KEYS, "Service": SERVICE_KEYS, "Install": INSTALL_KEYS}

BOOLEAN = {"1", "yes", "true", "on", "0", "no", "false", "off"}
BOOLEAN_KEYS = {
    "NoNewPrivileges", "PrivateTmp", "PrivateDevices", "PrivateNetwork", "RemainAfterExit", "DynamicUser",
    "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "ProtectClock",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectHostname", "DefaultDependencies", "SendSIGKILL", "SendSIGHUP", "RemoveIPC", "GuessMainPID",
}  # fmt: skip
CHOICES = {
    "Type": {"simple", "exec", "forking", "oneshot", "dbus", "notify", "notify-reload", "idle"},
    "Restart": {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"},
    "KillMode": {"control-group", "mixed", "process", "none"},
    "NotifyAccess": {"none", "main", "exec", "all"},
    "ProtectSystem": BOOLEAN | {"full", "strict"},
    "ProtectHome": BOOLEAN | {"read-only", "tmpfs"},
}
TIME_KEYS = {
    "RestartSec", "TimeoutStartSec", "TimeoutStopSec", "TimeoutAbortSec", "TimeoutSec", "RuntimeMaxSec",
    "WatchdogSec", "StartLimitIntervalSec", "JobTimeoutSec",
}  # fmt: skip
EXEC_KEYS = {
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecCondition",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
}
PATH_KEYS = {
    "WorkingDirectory",
    "EnvironmentFile",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "PIDFile",
}
_TIME = re.compile(
    r"^(infinity|(\d+(\.\d+)?\s*(us|ms|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?)?\s*)+)$"
)
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


@dataclass
class Unit:
    path: Path
    sections: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def values(self, section: str, key: str) -> list[str]:
        return [v for _, k, v in self.sections.get(section, []) if k == key]

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {message}")


def parse(path: Path) -> Unit:
    """Split a unit file into sections of (line number, key, value), as systemd reads it."""
    unit = Unit(path)
    section: str | None = None
    pending: tuple[int, str] | None = None  # a line continued with a trailing backslash
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if pending is not None:
            if line.startswith(("#", ";")):
                continue  # comment lines inside a continuation are skipped
            start, text = pending
            text = f"{text} {line}"
            if text.endswith("\\"):
                pending = (start, text[:-1].rstrip())
                continue
            pending = None
            number, line = start, text
        elif not line or line.startswith(("#", ";")):
            continue
        elif line.endswith("\\"):
            pending = (number, line[:-1].rstrip())
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section not in SECTIONS and not section.startswith("X-"):
                unit.problem(number, f"unknown section [{section}]")
            unit.sections.setdefault(section, [])
            continue
        if section is None:
            unit.problem(number, "assignment outside of any section")
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            unit.problem(number, f"not a Key=value line: {line!r}")
            continue
        unit.sections[section].append((number, key, value))
    if pending is not None:
        unit.problem(pending[0], "file ends inside a continued line")
    return unit


def _exec_path(value: str) -> str:
    command = value.split()[0] if value.split() else ""
    return command.lstrip("@-:+!")


def _check_entries(unit: Unit) -> None:
    """Every Key=value line: known key, a value that parses, the portal's rules."""
    for section, entries in unit.sections.items():
        known = SECTIONS.get(section)
        for number, key, value in entries:
            if known is not None and key not in known:
                unit.problem(number, f"unknown key {key}= in [{section}]")
            if key in BOOLEAN_KEYS and value.lower() not in BOOLEAN:
                unit.problem(number, f"{key}= is not a boolean: {value!r}")
            if key in CHOICES and value not in CHOICES[key]:
                unit.problem(number, f"{key}= must be one of {sorted(CHOICES[key])}, not {value!r}")
            if key in TIME_KEYS and not _TIME.match(value):
                unit.problem(number, f"{key}= is not a time span: {value!r}")
            if key in EXEC_KEYS and not _exec_path(value).startswith("/"):
                unit.problem(number, f"{key}= must start with an absolute path: {value!r}")
            if key in PATH_KEYS:
                for item in value.split():
                    if not item.lstrip("-+").startswith("/"):
                        unit.problem(number, f"{key}= needs absolute paths: {item!r}")
            if key == "UMask" and not re.fullmatch(r"0?[0-7]{3}", value):
                unit.problem(number, f"UMask= is not an octal mode: {value!r}")
            if key in ("User", "Group") and value in ("root", "0"):
                unit.problem(number, f"{key}=root: the portal never runs as root")
            if key == "WantedBy" and not all(t.endswith(".target") for t in value.split()):
                unit.problem(number, f"WantedBy= names targets: {value!r}")


def check_dropin(unit: Unit) -> list[str]:
    """A drop-in adds to its unit: no required sections, the same keys and values, the portal's rules. The
    audit queue's worker must get its own environment file (the sealer's DATABASE_URL) after portal.env."""
    if not unit.sections:
        unit.problem(1, "an empty drop-in")
    _check_entries(unit)
    if unit.path.parent.name == "portal-worker@audit.service.d":
        files = [
            f for f in unit.values("Service", "EnvironmentFile") if f.lstrip("-") != "/etc/portal/portal.env"
        ]
        if not files:
            unit.problem(
                1, "the audit worker's drop-in must add an EnvironmentFile= (the sealer's DATABASE_URL)"
            )
        elif any(f.startswith("-") for f in files):
            unit.problem(1, 'the sealer\'s EnvironmentFile= must not be optional ("-"): without it, no start')
    return unit.problems


def is_dropin(path: Path) -> bool:
    return path.suffix == ".conf" and path.parent.name.endswith(".service.d")


def check(unit: Unit) -> list[str]:
    if is_dropin(unit.path):
        return check_dropin(unit)
    if "Service" not in unit.sections:
        unit.problem(1, "no [Service] section")
    if "Unit" not in unit.sections or not unit.values("Unit", "Description"):
        unit.problem(1, "no [Unit] Description=")
    _check_entries(unit)
    if "Service" in unit.sections:
        if len(unit.values("Service", "ExecStart")) != 1:
            unit.problem(1, "a service needs exactly one ExecStart=")
        if not unit.values("Service", "User"):
            unit.problem(1, "no User=: the service would run as root")
    is_template = unit.path.name.endswith("@.service")
    text = " ".join(v for entries in unit.sections.values() for _, _, v in entries)
    if is_template and "%i" not in text and "%I" not in text:
        unit.problem(1, "a template unit that never uses its instance name (%i)")
    return unit.problems


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    problems: list[str] = []
    for name in argv:
        found = check(parse(Path(name)))
        problems.extend(found)
        if not found:
            print(f"ok: {name}")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
