"""manage.py load_synthetic --consumers N [--seed S]: load a synthetic world fast (COPY on PostgreSQL)."""

import argparse
import sys
import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from portal.records import loader, synthetic


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = "Load N synthetic consumers with accounts, two years of transactions and segment memberships."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--consumers", type=positive_int, required=True, help="how many consumers to load"
        )
        parser.add_argument("--seed", type=non_negative_int, default=1, help="generator seed (default 1)")
        parser.add_argument("--start", type=non_negative_int, default=0, help="index of the first consumer")
        parser.add_argument(
            "--chunk-size",
            type=positive_int,
            default=loader.DEFAULT_CHUNK,
            help=f"consumers per transaction (default {loader.DEFAULT_CHUNK})",
        )
        parser.add_argument(
            "--end",
            type=iso_date,
            default=None,
            help="day the data ends (default: first day of this month, Shanghai time)",
        )

    def handle(self, *args, consumers: int, seed: int, start: int, chunk_size: int, end, **options) -> None:
        end = end or synthetic.default_end_date()
        started = time.perf_counter()
        interactive = sys.stderr.isatty()

        def progress(result: loader.LoadResult, total: int) -> None:
            rate = result.rows / max(time.perf_counter() - started, 1e-9)
            line = (
                f"{result.consumers:,}/{total:,} consumers, {result.transactions:,} transactions "
                f"({rate:,.0f} rows/s)"
            )
            self.stderr.write(f"\r{line}" if interactive else line, ending="")
            if not interactive:
                self.stderr.write("")

        try:
            result = loader.load(
                seed=seed, consumers=consumers, end=end, start=start, chunk_size=chunk_size, progress=progress
            )
        except loader.LoadError as exc:
            raise CommandError(str(exc)) from exc
        if interactive and result.consumers:
            self.stderr.write("")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Loaded {result.consumers:,} consumers, {result.accounts:,} accounts, "
            f"{result.transactions:,} transactions, {result.memberships:,} segment memberships "
            f"in {elapsed:.1f} s ({result.rows / max(elapsed, 1e-9):,.0f} rows/s); "
            f"{result.skipped_chunks} chunk(s) were already loaded."
        )
