# Sourced by the device scripts (device_check.sh, device_campaign.sh), in the repository's root:
# racl on PYTHONPATH, unbuffered output, and the packages a lent GPU machine lacks, as
# `make device-packages` left them in the carried .whl/ (torchattacks' wheel, pyautoattack's code).
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# pure-Python packages carried as code (pyautoattack without its example model)
[ -d .whl/site ] && export PYTHONPATH="$PYTHONPATH:$PWD/.whl/site"
PY=${PYTHON:-python3}
