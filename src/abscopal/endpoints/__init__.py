"""Trial endpoints: RECIST 1.1 / iRECIST at scan visits, survival statistics, toxicity."""
