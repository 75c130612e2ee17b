using FineTuneService.Cli.Commands;

return args.FirstOrDefault() switch
{
    "classifier" => ClassifierCommand.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: fts <command> ...\n  classifier train|validate   build / validate the harm classifier judge");
    return 2;
}
