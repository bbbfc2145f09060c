"""CitySOC shared package: settings, tenancy, event schema, event stores and the `soc` CLI."""

__version__ = "0.1.0"
