# The two commands: `make run` (the product on embedded defaults) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-local

.PHONY: run test install lint messages bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements/base.txt requirements/local.txt
	$(BIN)/pip install --quiet -r requirements/local.txt
	@touch $(STAMP)

install: $(STAMP)

run: install
	DJANGO_SETTINGS_MODULE=config.settings.local $(BIN)/python manage.py run_stack

test: install
	$(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python bench/arch/imports.py --check

messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var
	$(BIN)/python manage.py makemessages -d djangojs -l zh_Hans --ignore=.venv --ignore=var
	scripts/i18n_compile.sh --fold

clean:
	rm -rf $(VENV) var
