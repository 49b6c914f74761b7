# make demo | make test | make lab | make figures -- each creates .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lab figures lint clean-venv

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m clipsam_lite demo

test: $(STAMP)
	CLIPSAM_PROFILE=tiny $(BIN)/python -m pytest tests --nbmake --nbmake-timeout=300 notebooks
	CLIPSAM_PROFILE=mini $(BIN)/python -m pytest --nbmake --nbmake-timeout=300 notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

figures: $(STAMP)
	$(BIN)/python -m clipsam_lite figures --out figures

lint: $(STAMP)
	$(BIN)/ruff check clipsam_lite tests benchmarks

clean-venv:
	rm -rf $(VENV)
