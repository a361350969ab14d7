"""What leaves the server, in one place: response models (``ThingPublic``) and the functions that build them
from the domain's objects, for the routers and the command line alike (``gridgov`` never imports a router)."""
