"""Files that install and configure the local broker (a Maven pom and a log4j2 config)."""
