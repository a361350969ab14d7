"""The command line and settings that wire gridgov's parts (spatial, api, fixtures) together."""
