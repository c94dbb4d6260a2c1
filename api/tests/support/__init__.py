"""Support code for the tests: databases under test, the CLI, live servers, accounts,
factories. Test modules import from here, never from each other; conftest.py only wires
fixtures."""
