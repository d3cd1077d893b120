"""components.load_component_from_text: a KFP v2 component YAML used in a pipeline."""

from stepwell import components, dsl

ADD_YAML = """
components:
  comp-add:
    executorLabel: exec-add
    inputDefinitions:
      parameters:
        a: {parameterType: NUMBER_INTEGER}
        b: {parameterType: NUMBER_INTEGER, defaultValue: 1.0, isOptional: true}
    outputDefinitions:
      parameters:
        sum: {parameterType: NUMBER_INTEGER}
deploymentSpec:
  executors:
    exec-add:
      container:
        image: python:3.11
        command: [sh, -c, 'mkdir -p "$(dirname "$2")" && echo $(($0 + $1)) > "$2"']
        args: ["{{$.inputs.parameters['a']}}", "{{$.inputs.parameters['b']}}",
               "{{$.outputs.parameters['sum'].output_file}}"]
pipelineInfo: {name: add}
root:
  dag:
    outputs:
      parameters:
        sum: {valueFromParameter: {outputParameterKey: sum, producerSubtask: add}}
    tasks:
      add:
        cachingOptions: {enableCache: true}
        componentRef: {name: comp-add}
        inputs:
          parameters:
            a: {componentInputParameter: a}
            b: {componentInputParameter: b}
        taskInfo: {name: add}
  inputDefinitions:
    parameters:
      a: {parameterType: NUMBER_INTEGER}
      b: {parameterType: NUMBER_INTEGER, defaultValue: 1.0, isOptional: true}
  outputDefinitions:
    parameters:
      sum: {parameterType: NUMBER_INTEGER}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"""

add = components.load_component_from_text(ADD_YAML)


@dsl.pipeline
def loaded_text(x: int = 2) -> int:
    first = add(a=x)
    return add(a=first.outputs["sum"], b=10).outputs["sum"]


TARGET = loaded_text
