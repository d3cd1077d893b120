"""dsl.importer with a constant URI and with a URI from a pipeline parameter."""

from stepwell import dsl
from stepwell.dsl import Dataset, Input, Model


@dsl.component
def use(data: Input[Dataset], model: Input[Model]) -> str:
    return data.uri + model.uri


@dsl.pipeline
def importer_pipeline(model_uri: str = "/tmp/models/m1"):
    data = dsl.importer(
        artifact_uri="/tmp/data/d1",
        artifact_class=Dataset,
        reimport=False,
        metadata={"source": "golden", "rows": 3},
    )
    model = dsl.importer(artifact_uri=model_uri, artifact_class=Model, reimport=True)
    use(data=data.output, model=model.output)


TARGET = importer_pipeline
