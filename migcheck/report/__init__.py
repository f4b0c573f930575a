"""Report formats: each module renders a Run for one audience."""
