.PHONY: install render test soak bench

install:
	python3 -m pip install -q --disable-pip-version-check -e .

render: install
	perfstack render --all

test:
	bash scripts/test

bench:
	bash scripts/test --co -q >/dev/null
	python3 benchmarks/run.py --readme

soak:
	bash scripts/soak
