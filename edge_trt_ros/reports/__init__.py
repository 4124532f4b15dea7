"""Result files a person can open: the environment record every benchmark result carries."""
