"""cpbench: how does run time follow complexity on this device, and what is the cheapest CNN that
still reaches my accuracy target here?"""

__version__ = "0.1.0"
