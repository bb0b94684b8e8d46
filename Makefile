.PHONY: install render test soak bench bench-vector bench-workers

install:
	python3 -m pip install -q --disable-pip-version-check -e .

render: install
	perfstack render --all

test:
	bash scripts/test

bench:
	bash scripts/test --co -q >/dev/null
	python3 benchmarks/run.py --readme

bench-vector:
	python3 benchmarks/vector_bench.py

bench-workers:
	python3 benchmarks/worker_bench.py

soak:
	bash scripts/soak
