# The key README.md's Providers example calls with: the demo client's.
export SLUICE_KEY=$(cat data/demo.key)
