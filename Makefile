PY := .venv/bin/python

.PHONY: serve test check format bench-load bench-access bench-exports bench-summaries bench-audit bench-scoring bench-chunks bench-planning

serve:
	python3 dev.py serve

test:
	python3 dev.py test

check:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/lint-imports
	$(PY) -m mypy .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench-load:
	$(PY) bench/load.py

bench-access:
	$(PY) bench/access.py

bench-exports:
	$(PY) bench/exports.py

bench-summaries:
	$(PY) bench/summaries.py

bench-audit:
	$(PY) bench/audit.py

bench-scoring:
	$(PY) bench/scoring.py

bench-chunks:
	$(PY) bench/chunks.py

bench-planning:
	$(PY) bench/planning.py
