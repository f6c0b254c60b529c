"""``python -m bpttlab.kernel -f CONNECTION_FILE``: the command in the kernelspec's argv."""
from .app import main

main()
