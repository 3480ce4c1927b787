"""The line-item stage on Apache Spark (``engine: spark``): imported only when that engine is chosen,
so the default install needs no Java and no pyspark (``pip install 'segflow[spark]'``)."""
