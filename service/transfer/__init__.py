"""Models in and out: a team's weights imported (header checked first), any version exported."""
