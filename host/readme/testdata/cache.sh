# The key README.md's Response cache example calls with: the demo client's.
KEY=$(cat data/demo.key)
