"""Pure geometry: coordinate systems, metric measures, codes and validation. No database here."""
